"""Streamlit entry point: page configuration and navigation over pages/."""

import streamlit as st

st.set_page_config(page_title="Skin-lesion classifier (research demo)", page_icon="🔬",
                   layout="wide")

navigation = st.navigation([
    st.Page("pages/about.py", title="About", icon=":material/info:", default=True),
])
navigation.run()
