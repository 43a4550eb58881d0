"""About: what the project is, where the data comes from, and the disclaimer."""

import streamlit as st

st.title("Skin-lesion classifier and backbone comparator")
st.warning(
    "**Research demo, not a medical device.** Its outputs are not a diagnosis and must "
    "not guide any medical decision. See a dermatologist about any lesion that worries you."
)
st.markdown(
    """
This project trains and compares CNN backbones (ResNet50, DenseNet121, MobileNetV2,
EfficientNetB0, InceptionV3, Xception) on dermoscopic images of the seven HAM10000
classes, with metrics from a test split that keeps every image of a lesion on one side.

**Data.** HAM10000: Tschandl, P., Rosendahl, C. & Kittler, H. *The HAM10000 dataset, a
large collection of multi-source dermatoscopic images of common pigmented skin lesions.*
Sci. Data 5, 180161 (2018). Licence CC BY-NC 4.0: research and demonstration use only.

**Train your own model** with `python -m train --data DIR --backbone NAME --img-size N
--epochs N --init none --out DIR`; see the README.
"""
)
