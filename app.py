"""Streamlit entry point: page configuration and navigation over pages/."""

import streamlit as st

st.set_page_config(page_title="Skin-lesion classifier (research demo)", page_icon="🔬",
                   layout="wide")

CLASSIFY = "pages/classify.py"
navigation = st.navigation([
    st.Page(CLASSIFY, title="Classify", icon=":material/search:", default=True, url_path="home"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/evaluation.py", title="Evaluation", icon=":material/monitoring:"),
    st.Page("pages/about.py", title="About", icon=":material/info:"),
    # The default page is served at "/" only: /classify (the page's name in the sidebar)
    # is the same script at a stable URL of its own.
    st.Page(CLASSIFY, title="Classify", url_path="classify", visibility="hidden"),
])
navigation.run()
