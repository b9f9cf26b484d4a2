"""Hashed-only audience files for ad platforms: Google Customer Match and Meta custom audiences.

A segment's plain audience file holds e-mails, phones and names for the marketing team's
own tools. An ad platform needs none of them in clear: it matches SHA-256 hashes of
normalised values against its own. These files hold only those hashes, under the column
headers of each platform's upload template, plus the few fields the platform documents as
plain (Google: country and zip; Meta: extern_id, our customer_id).

Who is in it: the segment's members whose latest `marketing_opt_in` statement is consent
(core.customers.has_email_consent; the data has no separate consent to advertising, and
marketing consent is the one that covers it, whatever channel the segment is for) and who
have an e-mail or a phone, the identifiers both platforms match on.

Every expression below normalises in SQL, then hashes with DuckDB's sha256 (lower-case hex),
so the file is built set-based in the warehouse and no plain value reaches Python. An
empty result of a normalisation is null (an empty cell), never the hash of ''.
"""

from __future__ import annotations

PLATFORMS = ("google", "meta")


def _sha256(normalised: str) -> str:
    return f"sha256(nullif({normalised}, ''))"


def _lower_trimmed(column: str) -> str:
    return f"lower(trim(customers.{column}))"


def _letters_only(column: str) -> str:
    # Meta: "a-z only, lowercase, no punctuation", special characters kept in UTF-8; \p{L} keeps
    # é and ø (as Meta asks) while dropping spaces, hyphens and apostrophes.
    return rf"regexp_replace(lower(customers.{column}), '[^\p{{L}}]', '', 'g')"


# Google Ads Help, "Format your customer data file" (support.google.com/google-ads/answer/7659867)
# and its Customer Match upload template: headers Email, Phone, First Name, Last Name, Country,
# Zip in English; e-mail and names lower-cased with no extra spaces before, after or between;
# the phone in E.164 with its + and country code; SHA-256 of each. Country (ISO two-letter)
# and Zip are matched in clear, so they are not hashed.
GOOGLE_COLUMNS = {
    "Email": _sha256(_lower_trimmed("email")),
    "Phone": _sha256("customers.phone_e164"),
    "First Name": _sha256(rf"regexp_replace({_lower_trimmed('first_name')}, '\s+', ' ', 'g')"),
    "Last Name": _sha256(rf"regexp_replace({_lower_trimmed('last_name')}, '\s+', ' ', 'g')"),
    "Country": "customers.country",
    "Zip": "trim(customers.postcode)",
}

# Meta for developers, Marketing API "Customer File Custom Audiences", its section "Hashing and
# Normalizing Data": every key hashed with SHA-256 except EXTERN_ID (hashing not required);
# e-mail trimmed and lower-cased; phone digits only, with the country code and no +; first and
# last name and city lower-case letters only, no punctuation or spaces; zip lower-case without
# spaces (for the US only its first 5 digits); country the ISO 3166-1 alpha-2 code in lower
# case; year of birth as YYYY (doby). Headers as in Ads Manager's customer list template.
META_COLUMNS = {
    "email": _sha256(_lower_trimmed("email")),
    "phone": _sha256("replace(customers.phone_e164, '+', '')"),
    "fn": _sha256(_letters_only("first_name")),
    "ln": _sha256(_letters_only("last_name")),
    "zip": _sha256(
        "case when upper(customers.country) = 'US' then left(replace(lower(customers.postcode), ' ', ''), 5) "
        "else replace(lower(customers.postcode), ' ', '') end"
    ),
    "ct": _sha256(_letters_only("city")),
    "country": _sha256(_lower_trimmed("country")),
    "doby": _sha256("cast(year(customers.birth_on) as varchar)"),
    "extern_id": "customers.customer_id",
}

COLUMNS = {"google": GOOGLE_COLUMNS, "meta": META_COLUMNS}

# Who is in an audience (segmentation, segment, customer_id): a segment's members, or for
# segmentation 'campaign' a campaign's treated members (its holdout never: loyalty.campaign_assignments).
# Shared with the plain files (segment_files.audience_query).
SEGMENT_MEMBERS = "marts.segment_memberships"
CAMPAIGN_MEMBERS = """(
    select 'campaign' as segmentation, campaign as segment, customer_id
    from loyalty.campaign_assignments
    where arm = 'treatment'
)"""


def members_of(segmentation: str) -> str:
    return CAMPAIGN_MEMBERS if segmentation == "campaign" else SEGMENT_MEMBERS


# Marketing consent, and something the platform can match on.
CONSENT = (
    "customers.has_email_consent "
    "and (customers.email is not null or customers.phone_e164 is not null)"
)


def platform_query(platform: str, segmentation: str = "rfm") -> str:
    """The hashed-only audience of one segment for `platform`; parameters: segmentation, segment."""
    columns = ",\n    ".join(f'{sql} as "{header}"' for header, sql in COLUMNS[platform].items())
    return f"""
select
    {columns}
from {members_of(segmentation)} as memberships
join core.customers as customers using (customer_id)
where memberships.segmentation = ? and memberships.segment = ?
    and {CONSENT}
order by customers.customer_id
"""
