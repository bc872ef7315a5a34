"""Data files of the label exchange formats (XML schemas); see README.md in this folder."""
