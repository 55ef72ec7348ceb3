"""A faithful local HubSpot: the CRM v3 contacts and contact-properties API, strict like HubSpot.

Module map: `core` (the Emulator: lifecycle, request log, direct access for tests), `server`
(HTTP routes, auth, scopes, responses), `contacts` and `search` (contact endpoints), `properties`
(properties and groups), `store` (the portal's data, thread-safe, persisted as JSON),
`validation` (emails, values by type, property definitions), `ratelimit`, `faults`, `bodies`
(HubSpot's error shapes), `seed` (standard properties and groups).

Endpoints (also under the date-versioned `/crm/objects/2026-03|2026-09/contacts/...` and
`/crm/properties/2026-03|2026-09/contacts/...`) and the operation names `Emulator.count()` uses:

    contacts.list            GET    /crm/v3/objects/contacts
    contacts.get             GET    /crm/v3/objects/contacts/{id}[?idProperty=email]
    contacts.batch_upsert    POST   /crm/v3/objects/contacts/batch/upsert   (idProperty=email)
    contacts.batch_read      POST   /crm/v3/objects/contacts/batch/read
    contacts.batch_create    POST   /crm/v3/objects/contacts/batch/create
    contacts.batch_update    POST   /crm/v3/objects/contacts/batch/update
    contacts.search          POST   /crm/v3/objects/contacts/search
    contacts.merge           POST   /crm/v3/objects/contacts/merge
    contacts.patch           PATCH  /crm/v3/objects/contacts/{id}[?idProperty=email]
    contacts.delete          DELETE /crm/v3/objects/contacts/{id}
    properties.list          GET    /crm/v3/properties/contacts
    properties.get           GET    /crm/v3/properties/contacts/{name}
    properties.create        POST   /crm/v3/properties/contacts
    properties.batch_create  POST   /crm/v3/properties/contacts/batch/create
    properties.update        PATCH  /crm/v3/properties/contacts/{name}
    properties.archive       DELETE /crm/v3/properties/contacts/{name}
    groups.list              GET    /crm/v3/properties/contacts/groups
    groups.create            POST   /crm/v3/properties/contacts/groups
    unknown                  any other path (404) or method (405)

2026-09 replies (HUBSPOT.md §0): no 207, item errors and `numErrors` come inside the 200 (property
batch create answers 200 whatever happened); a requested property without a value is null.
Validation rules (`required_on_create`, `--require-on-create`): creating a contact without one of
those properties fails the whole batch with a 400 that names the property but not the input.

Choices where HubSpot's behaviour is unconfirmed (HUBSPOT.md §7), always the strict side:
- A bad value or email anywhere in an upsert/create/update batch fails the whole batch with 400
  VALIDATION_ERROR; `errors[]` names each bad property, with the input's id in `context.id`.
- Reads leave requested-but-empty properties out (never null). A batch read by email always
  returns the email property so results can be matched; all-missing is still a 207.
- Date values are returned as YYYY-MM-DD and datetimes as ISO 8601 UTC, whatever was written.
- API 429s carry no Retry-After. Requests refused with 401, 403 or 429 use no budget;
  every other request (even a 400) does. Search skips the rolling window, has its own per-second
  limit and sends no rate-limit headers.
- Faults (seeded): `fail_rate` answers 500/502/503 without applying the request; `reset_rate`
  drops the connection (TCP reset, no response) and applies the request first for half of them,
  as HubSpot may do the work and lose the reply. The request log records a drop as status 0.
  Faults and latency hit API routes only, and faults only requests that passed auth and limits.
"""

from __future__ import annotations

from syncdsl.emulator.core import DEFAULT_SCOPES, DEFAULT_TOKEN, Emulator, RequestRecord

__all__ = ["DEFAULT_SCOPES", "DEFAULT_TOKEN", "Emulator", "RequestRecord"]
