"""Recognisable secrets: set for the whole test run and looked for in every log and response."""

HF_TOKEN_CANARY = "hf_CanaryTokenQx7Zp3Lm9Vb2Nc5Rt8"
API_KEY_CANARIES = ("kronos-canary-key-Ae4Tg7", "kronos-canary-key-Wq9Ks2")
HUB_PASSWORD_CANARY = "hub-canary-pa55-Jr6Wd1"
"""The password of a hub URL with credentials (`HF_ENDPOINT=http://user:PASSWORD@host`)."""
SECRETS = (HF_TOKEN_CANARY, *API_KEY_CANARIES, HUB_PASSWORD_CANARY)
