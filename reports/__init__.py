"""Report rendering (Markdown and HTML)."""
