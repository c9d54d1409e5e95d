"""Scores of speech and text, used by eval, the dataset builder and synthesis checks: WER/CER with their normalizers and statistics, speaker similarity, predicted MOS."""
