"""Revyl's API: `sansio` builds requests and reads answers; `client` sends them."""
