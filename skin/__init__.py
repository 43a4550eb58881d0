"""Skin-lesion classification library: everything the app, the CLI and `train/` share.

No Streamlit here, so that every front end can stand on it.
"""
