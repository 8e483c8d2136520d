"""Test oracles: readers and models that judge opendms without using its code.

Each oracle is written from a specification (the AWS DMS user guide, the README),
never from opendms's implementation, so a defect in the implementation cannot hide
behind the same defect in the judge.
"""
