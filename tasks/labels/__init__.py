"""Class lists of the built-in tasks (JSON lists in X-ARES 0.1.3 order); a package so they ship."""
