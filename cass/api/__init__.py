"""The machine API (/api/v1): events pushed by an operator's other CSMS; and the admin page
for the secret that signs them."""
