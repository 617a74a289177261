"""Stage 8 — reporting: leaderboard tables, the published X-ARES table, compare, plots."""
