"""Sites: the places chargers stand, with their address, position, time zone and contact."""
