"""Class sets: codes, full names, and which classes are malignant or pre-malignant."""

HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

FULL_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesion",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus",
    "vasc": "Vascular lesion",
}

MALIGNANT = frozenset({"mel", "bcc", "akiec"})


def full_name(code: str) -> str:
    """The readable name of a class code; unknown codes are returned as they are."""
    return FULL_NAMES.get(code, code)


def is_malignant(code: str) -> bool:
    return code in MALIGNANT
