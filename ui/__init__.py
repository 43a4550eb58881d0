"""What the app's pages share: the cached model loaders and the image input
(ui.common), charts (ui.charts), the comparator's views (ui.comparator) and the metrics
table (ui.metrics_table). The page scripts alone live in pages/.

Streamlit treats a folder named pages/ beside the entry script as a legacy multipage app
until the first st.navigation call of the server process, whatever the folder holds. So
if the very first visit to a fresh server is a deep link such as /compare, Streamlit runs
pages/compare.py on its own: no app.py, and a sidebar listing every script of pages/ as a
page (tests/test_browser.py). Every page imports this package first, which happens once
per process: if that first import is such a legacy run, switch the legacy mode off and
rerun, so app.py routes the same URL.
"""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

if getattr(PagesManager, "uses_pages_directory", False):
    PagesManager.uses_pages_directory = False
    st.rerun()
