"""The web front end: chat, widget and HTTP API over ``rag.engine``."""
