"""`python -m train`: turns a labelled image set into a trained model and its card."""
