"""What the seed document says of its one migration: the facts several test modules check."""

# The downtime ramp Nova Newton logged (downtime 500 ms, 10 steps, delay 75 s/GiB, data_gb 2).
SEED_RAMP = [
    (0, 46),
    (150, 47),
    (300, 48),
    (450, 51),
    (600, 57),
    (750, 66),
    (900, 84),
    (1050, 117),
    (1200, 179),
    (1350, 291),
    (1500, 500),
]

# The same ramp as JSON carries it: a list of [seconds, ms] pairs.
SEED_RAMP_JSON = [list(step) for step in SEED_RAMP]
