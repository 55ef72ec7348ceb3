"""HubSpot's standard contact properties and property groups, as a fresh portal has them."""

from __future__ import annotations

from typing import Any

from syncdsl.emulator.standard import EXTRA

#: When HubSpot created its default contact properties (real value from a GET of a portal).
_DEFINED_AT = "2019-08-06T02:41:08.237Z"

STANDARD_GROUPS: tuple[tuple[str, str, int], ...] = (
    ("contactinformation", "Contact information", 0),
    ("emailinformation", "Email information", 1),
    ("conversioninformation", "Conversion information", 2),
    ("sales_properties", "Sales properties", 3),
    ("analyticsinformation", "Web analytics history", 4),
    ("socialmediainformation", "Social media information", 5),
)

_LIFECYCLE_STAGES = (
    ("Subscriber", "subscriber"),
    ("Lead", "lead"),
    ("Marketing Qualified Lead", "marketingqualifiedlead"),
    ("Sales Qualified Lead", "salesqualifiedlead"),
    ("Opportunity", "opportunity"),
    ("Customer", "customer"),
    ("Evangelist", "evangelist"),
    ("Other", "other"),
)
_LEAD_STATUSES = (
    ("New", "NEW"),
    ("Open", "OPEN"),
    ("In Progress", "IN_PROGRESS"),
    ("Open Deal", "OPEN_DEAL"),
    ("Unqualified", "UNQUALIFIED"),
    ("Attempted to Contact", "ATTEMPTED_TO_CONTACT"),
    ("Connected", "CONNECTED"),
    ("Bad Timing", "BAD_TIMING"),
)
_EMPLOYEES = ("1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+")

# name, label, type, fieldType, description, displayOrder, read-only value, options
_STANDARD: tuple[tuple[str, str, str, str, str, int, bool, tuple[tuple[str, str], ...]], ...] = (
    ("firstname", "First Name", "string", "text", "A contact's first name", 0, False, ()),
    ("lastname", "Last Name", "string", "text", "A contact's last name", 1, False, ()),
    (
        "salutation",
        "Salutation",
        "string",
        "text",
        "The title used to address a contact",
        2,
        False,
        (),
    ),
    ("email", "Email", "string", "text", "A contact's email address", 3, False, ()),
    (
        "phone",
        "Phone Number",
        "string",
        "phonenumber",
        "A contact's primary phone number",
        4,
        False,
        (),
    ),
    (
        "mobilephone",
        "Mobile Phone Number",
        "string",
        "phonenumber",
        "A contact's mobile phone number",
        4,
        False,
        (),
    ),
    ("fax", "Fax Number", "string", "phonenumber", "A contact's primary fax number", 5, False, ()),
    ("address", "Street Address", "string", "text", "A contact's street address", 6, False, ()),
    ("city", "City", "string", "text", "A contact's city of residence", 7, False, ()),
    ("state", "State/Region", "string", "text", "The contact's state of residence.", 8, False, ()),
    ("zip", "Postal Code", "string", "text", "The contact's zip code.", 9, False, ()),
    (
        "country",
        "Country/Region",
        "string",
        "text",
        "The contact's country/region of residence.",
        10,
        False,
        (),
    ),
    ("jobtitle", "Job Title", "string", "text", "A contact's job title", 12, False, ()),
    (
        "lifecyclestage",
        "Lifecycle Stage",
        "enumeration",
        "radio",
        "The qualification of contacts to sales readiness.",
        15,
        False,
        _LIFECYCLE_STAGES,
    ),
    (
        "createdate",
        "Create Date",
        "datetime",
        "date",
        "The date that a contact entered the system",
        17,
        True,
        (),
    ),
    ("company", "Company Name", "string", "text", "Name of the contact's company.", 19, False, ()),
    ("website", "Website URL", "string", "text", "Associated company website.", 20, False, ()),
    ("industry", "Industry", "string", "text", "The industry a contact is in", -1, False, ()),
    ("annualrevenue", "Annual Revenue", "string", "text", "Annual company revenue", -1, False, ()),
    (
        "numemployees",
        "Number of Employees",
        "enumeration",
        "select",
        "The number of company employees",
        -1,
        False,
        tuple((e, e) for e in _EMPLOYEES),
    ),
    (
        "date_of_birth",
        "Date of birth",
        "string",
        "text",
        "The contact's date of birth",
        -1,
        False,
        (),
    ),
    (
        "hs_object_id",
        "Record ID",
        "number",
        "number",
        "The unique ID for this record. This value is automatically set by HubSpot and may not be "
        "modified.",
        -1,
        True,
        (),
    ),
    (
        "lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        "The date any property on this contact was modified",
        -1,
        True,
        (),
    ),
    (
        "hs_email_domain",
        "Email Domain",
        "string",
        "text",
        "A contact's email address domain",
        -1,
        True,
        (),
    ),
    (
        "hs_lead_status",
        "Lead Status",
        "enumeration",
        "radio",
        "The contact's sales, prospecting or outreach status",
        -1,
        False,
        _LEAD_STATUSES,
    ),
)

#: Read-only properties HubSpot computes itself (a write to them is rejected).
COMPUTED_PROPERTIES = frozenset(
    {"hs_object_id", "createdate", "lastmodifieddate", "hs_email_domain"}
    | {name for name, _, _, _, _, read_only, _ in EXTRA if read_only}
)
#: Returned when a read names no properties (what HubSpot returns by default for contacts).
DEFAULT_READ_PROPERTIES = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
_SALES = {"hs_lead_status"}


def standard_groups() -> dict[str, dict[str, Any]]:
    """The default property groups, keyed by name, in HubSpot's PropertyGroup shape."""
    return {
        name: {"name": name, "label": label, "displayOrder": order, "archived": False}
        for name, label, order in STANDARD_GROUPS
    }


def standard_properties() -> dict[str, dict[str, Any]]:
    """The default contact properties, keyed by name, in HubSpot's Property shape."""
    properties: dict[str, dict[str, Any]] = {}
    rows = [
        *_STANDARD,
        *((n, label, t, f, label, -1, ro, o) for n, label, t, f, _, ro, o in EXTRA),
    ]
    groups = {name: group for name, _, _, _, group, _, _ in EXTRA}
    for name, label, type_, field_type, description, order, read_only, options in rows:
        properties[name] = {
            "updatedAt": _DEFINED_AT,
            "createdAt": _DEFINED_AT,
            "name": name,
            "label": label,
            "type": type_,
            "fieldType": field_type,
            "description": description,
            "groupName": groups.get(
                name, "sales_properties" if name in _SALES else "contactinformation"
            ),
            "options": [
                {"label": o_label, "value": value, "displayOrder": index, "hidden": False}
                for index, (o_label, value) in enumerate(options)
            ],
            "displayOrder": order,
            "calculated": name == "hs_email_domain",
            "externalOptions": name == "lifecyclestage",
            "hasUniqueValue": False,
            "hidden": False,
            "hubspotDefined": True,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": True,
                "readOnlyValue": read_only,
            },
            "formField": not read_only,
            "archived": False,
        }
    return properties
