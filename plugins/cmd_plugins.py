"""``mgf plugins``: what is installed, from which distribution, with which options."""

import json

from mgf import hookimpl, registry


@hookimpl
def register_commands(cli):
    p = cli.command("plugins", "List representations, model backends and samplers, with where they come from.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_plugins)


def plugin_listing() -> dict[str, list[dict]]:
    """What ``mgf plugins --json`` prints."""
    listing: dict[str, list[dict]] = {}
    for kind in ("representations", "models", "samplers"):
        rows = []
        for name, entry in sorted(registry.registry(kind).items()):
            row = {"name": name, "plugin": entry.plugin, "distribution": entry.distribution, "version": entry.version}
            if kind == "samplers":
                row["options"] = [
                    {"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help} for o in entry.cls.options
                ]
            rows.append(row)
        listing[kind] = rows
    return listing


def _plugins(args) -> int:
    listing = plugin_listing()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    titles = {"representations": "Representations", "models": "Model backends", "samplers": "Samplers"}
    for kind, rows in listing.items():
        print(f"{titles[kind]}:")
        for row in rows:
            print(f"  {row['name']:<14} {row['distribution']} {row['version']}".rstrip())
            for o in row.get("options", []):
                print(f"      --{o['name'].replace('_', '-'):<20} {o['type']}, default {o['default']}: {o['help']}")
    return 0
