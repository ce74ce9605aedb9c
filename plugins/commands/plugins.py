"""``mgf plugins``: every plugin with its distribution and version, and what each offers: options, config keys, commands."""

import json

from mgf import hookimpl, installed, installed_commands

TITLES = {"representations": "Representations (config keys: --config KEY=VALUE)", "models": "Model backends",
          "samplers": "Samplers", "constraints": "Constraints (--constrain NAME)",
          "controls": "Controls (mgf train --controls NAME; a bundle's values: mgf card)"}


@hookimpl
def register_commands(cli):
    p = cli.command("plugins", "List representations, model backends, samplers, constraints and commands, "
                               "with where they come from and their options.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_plugins)


def plugin_listing() -> dict[str, list[dict]]:
    """What ``mgf plugins --json`` prints: for each kind, one row per plugin class; then the commands by plugin."""
    listing: dict[str, list[dict]] = {}
    for kind in TITLES:
        listing[kind] = [
            {"name": name, "plugin": entry.plugin, "distribution": entry.distribution, "version": entry.version,
             "options": [option.describe() for option in entry.cls.options]}
            for name, entry in sorted(installed(kind).items())
        ]
    listing["commands"] = [
        {"plugin": plugin, "commands": names} for plugin, names in installed_commands().items()
    ]
    return listing


def _plugins(args) -> int:
    listing = plugin_listing()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for kind, title in TITLES.items():
        print(f"{title}:")
        for row in listing[kind]:
            print(f"  {row['name']:<14} {row['distribution']} {row['version']}".rstrip())
            if kind == "controls":
                print(f"      {installed(kind)[row['name']].cls.description}")
            for o in row["options"]:
                flag = o["name"] if kind == "representations" else "--" + o["name"].replace("_", "-")
                limits = f" in [{o.get('low', '-inf')}, {o.get('high', 'inf')}]" if "low" in o or "high" in o else ""
                choices = f" one of {', '.join(map(str, o['choices']))}" if "choices" in o else ""
                print(f"      {flag:<22} {o['type']}{limits}{choices}, default {o['default']}: {o['help']}")
    print("Commands:")
    for row in listing["commands"]:
        print(f"  {', '.join(row['commands'])}  ({row['plugin']})")
    return 0
