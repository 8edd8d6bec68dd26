"""Reliability suite (issue 11): nemesis runs of a real `stead serve` under a mixed
workload with invariants checked over the recorded history (nemesis*.py,
test_nemesis*.py), and random programs checked against a model (model*.py,
test_model*.py)."""
