"""The library's ready-made agents, as data. Each runs offline: only text, calculator, json_extract and wait."""

from django.db import migrations


def money(expression: str) -> str:
    """A `text` template of a calculator expression rounded to cents."""
    return f"(({expression}) * 100 + 0.5) // 1 / 100"


LIBRARY = [
    {
        "slug": "loan-payment",
        "name": "Loan payment",
        "description": "The monthly payment of a fixed-rate loan, and what it costs in all, from the amount, the "
                       "yearly interest rate (percent) and the years to pay it back.",
        "graph": {
            "nodes": [
                {"id": "terms", "block": "text", "input": {
                    "template": money("{amount} * ({rate} / 1200) / (1 - (1 + {rate} / 1200) ** -({years} * 12))"),
                    "values": {"amount": 200000, "rate": 4.5, "years": 30}}},
                {"id": "monthly", "block": "calculator", "input": {}},
                {"id": "total_expression", "block": "text", "input": {"template": money("{monthly} * {years} * 12"),
                                                                      "values": {"years": 30}}},
                {"id": "total", "block": "calculator", "input": {}},
                {"id": "summary", "block": "text", "input": {
                    "template": "Pay {monthly} a month; {total} in all."}},
            ],
            "links": [
                {"from": "terms", "output": "text", "to": "monthly", "input": "expression"},
                {"from": "monthly", "output": "result", "to": "total_expression", "input": "values.monthly"},
                {"from": "total_expression", "output": "text", "to": "total", "input": "expression"},
                {"from": "monthly", "output": "result", "to": "summary", "input": "values.monthly"},
                {"from": "total", "output": "result", "to": "summary", "input": "values.total"},
            ],
        },
        "input_descriptions": {"terms.values": "amount (the loan), rate (yearly, percent) and years",
                               "total_expression.values": "years: the same years as the terms"},
    },
    {
        "slug": "extract-json-field",
        "name": "Extract a field from JSON",
        "description": "Pick one value out of a JSON document by a path like order.items[0].sku, and say what it is.",
        "graph": {
            "nodes": [
                {"id": "pick", "block": "json_extract", "input": {
                    "data": {"order": {"id": "A-1001", "items": [{"sku": "BOOK-42", "quantity": 2}]}},
                    "path": "order.items[0].sku"}},
                {"id": "say", "block": "text", "input": {"template": "The value is {value}."}},
            ],
            "links": [{"from": "pick", "output": "value", "to": "say", "input": "values.value"}],
        },
        "input_descriptions": {"pick.data": "the JSON document (an object, a list, or a string of JSON)",
                               "pick.path": "where the value is, like order.items[0].sku"},
    },
    {
        "slug": "fill-template",
        "name": "Fill a text template",
        "description": "Fill a letter, a message or any text from a form: each {placeholder} of the template gets "
                       "the value of that name.",
        "graph": {
            "nodes": [
                {"id": "letter", "block": "text", "input": {
                    "template": "Dear {name},\n\nThank you for your order {order}. It ships on {date}.\n\n{sender}",
                    "values": {"name": "Ada", "order": "A-1001", "date": "Monday", "sender": "The shop"}}},
            ],
            "links": [],
        },
        "input_descriptions": {"letter.template": "the text, with {placeholders}",
                               "letter.values": "a value for each placeholder: name, order, date, sender"},
    },
    {
        "slug": "timed-reminder",
        "name": "Timed reminder",
        "description": "Wait a number of seconds, then give back a reminder's text. Schedule it, or trigger it "
                       "from a webhook.",
        "graph": {
            "nodes": [
                {"id": "delay", "block": "wait", "input": {"seconds": 5}},
                {"id": "reminder", "block": "text", "input": {"template": "Reminder: {note} (after {after} s)",
                                                              "values": {"note": "stretch your legs"}}},
            ],
            "links": [{"from": "delay", "output": "seconds", "to": "reminder", "input": "values.after"}],
        },
        "input_descriptions": {"delay.seconds": "how long to wait first, in seconds (at most 600)",
                               "reminder.values": "note: what to remind of"},
    },
    {
        "slug": "celsius-to-fahrenheit",
        "name": "Celsius to Fahrenheit",
        "description": "Convert a temperature in degrees Celsius to degrees Fahrenheit.",
        "graph": {
            "nodes": [
                {"id": "formula", "block": "text", "input": {"template": "{celsius} * 9 / 5 + 32",
                                                             "values": {"celsius": 21}}},
                {"id": "convert", "block": "calculator", "input": {}},
                {"id": "say", "block": "text", "input": {"template": "{fahrenheit} °F"}},
            ],
            "links": [
                {"from": "formula", "output": "text", "to": "convert", "input": "expression"},
                {"from": "convert", "output": "result", "to": "say", "input": "values.fahrenheit"},
            ],
        },
        "input_descriptions": {"formula.values": "celsius: the temperature in °C"},
    },
    {
        "slug": "split-the-bill",
        "name": "Split the bill",
        "description": "What each person pays: the bill plus a tip (percent), split evenly.",
        "graph": {
            "nodes": [
                {"id": "formula", "block": "text", "input": {"template": money("{bill} * (1 + {tip} / 100) / {people}"),
                                                             "values": {"bill": 120, "tip": 15, "people": 4}}},
                {"id": "share", "block": "calculator", "input": {}},
                {"id": "say", "block": "text", "input": {"template": "Each of you pays {share}."}},
            ],
            "links": [
                {"from": "formula", "output": "text", "to": "share", "input": "expression"},
                {"from": "share", "output": "result", "to": "say", "input": "values.share"},
            ],
        },
        "input_descriptions": {"formula.values": "bill (the amount), tip (percent) and people"},
    },
    {
        "slug": "savings-growth",
        "name": "Savings growth",
        "description": "What a deposit grows to at a yearly interest rate (percent), compounded once a year.",
        "graph": {
            "nodes": [
                {"id": "formula", "block": "text", "input": {"template": money("{deposit} * (1 + {rate} / 100) ** {years}"),
                                                             "values": {"deposit": 1000, "rate": 3, "years": 10}}},
                {"id": "grow", "block": "calculator", "input": {}},
                {"id": "say", "block": "text", "input": {"template": "It grows to {total}."}},
            ],
            "links": [
                {"from": "formula", "output": "text", "to": "grow", "input": "expression"},
                {"from": "grow", "output": "result", "to": "say", "input": "values.total"},
            ],
        },
        "input_descriptions": {"formula.values": "deposit, rate (yearly, percent) and years"},
    },
]


def add_library(apps, schema_editor):
    LibraryAgent = apps.get_model("agents", "LibraryAgent")
    for position, entry in enumerate(LIBRARY):
        LibraryAgent.objects.update_or_create(slug=entry["slug"], defaults={**entry, "position": position})


def remove_library(apps, schema_editor):
    apps.get_model("agents", "LibraryAgent").objects.filter(slug__in=[entry["slug"] for entry in LIBRARY]).delete()


class Migration(migrations.Migration):
    dependencies = [("agents", "0004_library")]

    operations = [migrations.RunPython(add_library, remove_library)]
