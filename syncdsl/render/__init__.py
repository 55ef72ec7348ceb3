"""Plans and apply reports for people: text, Markdown (a pull-request comment), and `redact`."""
