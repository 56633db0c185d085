"""Evaluation (issue 14): how policies are compared. Starts with paired comparisons; the dataset
loaders, metrics, judge and harness still live in policy/ and trainer/ and move here next."""
