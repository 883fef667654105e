"""Electronic receipts (财政电子票据): numbering, check codes, issuing, rendering."""
