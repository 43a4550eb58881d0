"""Streamlit entry point: page configuration and navigation over pages/."""

import streamlit as st

st.set_page_config(page_title="Skin-lesion classifier (research demo)", page_icon="🔬",
                   layout="wide")

navigation = st.navigation([
    st.Page("pages/classify.py", title="Classify", icon=":material/search:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/evaluation.py", title="Evaluation", icon=":material/monitoring:"),
    st.Page("pages/about.py", title="About", icon=":material/info:"),
])
navigation.run()
