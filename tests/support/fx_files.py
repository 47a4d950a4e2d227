"""Exchange-rate files as they are downloaded."""

SARB_EXPORT = (
    "South African Reserve Bank\n"
    "Selected historical rates\n"
    "Rand per US Dollar (EXCX135)\n"
    "\n"
    "Date;Rand per US Dollar\n"
    "20/11/2026;18,2345\n"
    "21/11/2026;\n"              # Saturday: no rate
    "22/11/2026;-\n"             # Sunday
    "23/11/2026;18,3012\n"
)
"""A SARB export of USD/ZAR: title lines, semicolons, decimal commas, and weekend days without a rate."""
