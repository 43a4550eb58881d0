"""The Streamlit app, driven by streamlit.testing.v1.AppTest."""

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def test_about_page_shows_the_disclaimer_without_errors():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "not a medical device" in at.warning[0].value
    assert at.title[0].value.startswith("Skin-lesion classifier")
