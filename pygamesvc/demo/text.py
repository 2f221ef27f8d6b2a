"""Small text helpers shared by the demo's messages."""

__all__ = ["count_noun"]


def count_noun(count, singular, plural=None, *, grouped=False):
    """Return ``count`` followed by the noun in singular or plural form.

    ``plural`` defaults to ``singular + "s"``.  With ``grouped`` the count
    gets thousands separators ("1,500 rows").
    """
    if plural is None:
        plural = singular + "s"
    number = f"{count:,}" if grouped else str(count)
    return f"{number} {singular if count == 1 else plural}"
