"""HubSpot CRM client (API versions v3, 2026-03, 2026-09): typed calls, one shared rate budget, retries, errors for people.

Module map: `client` (HubSpotClient: the typed calls and the send/retry loop), `ratelimit`
(RateBudget: the tier's rolling window corrected by HubSpot's headers, search's 5/s, the daily
quota), `retry` (which failures are retried and how long to wait), `errors` (HubSpot responses to
syncdsl.errors exceptions with messages that say what to do), `models` (Contact, ContactWrite,
WriteReply, UpsertResult, ClientStats), `schema` (PropertySchema and its groups and options),
`tiers` (API versions, rate-limit tiers), `target` (a connected HubSpot). Import each from its
module: this package imports nothing, so `syncdsl.hubspot.tiers` costs no HTTP stack.
"""
