"""The ceremony page's static files (HTML, CSS, JavaScript modules), served at /ui/ by app/api/ui.py.

Hand-written, with no build step and no third-party code, so that the page
works on an air-gapped host and every line that touches a share can be read.
"""
