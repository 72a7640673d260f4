"""Placeholder replaced by the profiles module (issue 2)."""


def ls_rows() -> list[dict]:
    return []
