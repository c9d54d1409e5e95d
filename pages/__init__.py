"""One module per tab; each has ``build(engines) -> None`` called inside its ``gr.Tab``."""
