"""``emoclf serve``: a local web page for predictions on uploaded or webcam photos, and the latest comparison.

Kept light (constants only): the command line reads the defaults without loading the server.
"""

DEFAULT_HOST = "127.0.0.1"  # this machine only; another address is an explicit choice (--host)
DEFAULT_PORT = 7860
