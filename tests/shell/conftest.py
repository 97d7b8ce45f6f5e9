from tests.fs.conftest import mount  # noqa: F401  (the same real mount)
