"""``abc``: the ``notes`` melody tokens, written as ABC notation text."""

from mgf import InputError, atomic_path, hookimpl
from mgf.plugins.representations.notes import Notes

# every note carries its accidental (= natural): in ABC an accidental lasts to the end of the bar
NAMES = ["=C", "^C", "=D", "^D", "=E", "=F", "^F", "=G", "^G", "=A", "^A", "=B"]


def abc_pitch(midi: int) -> str:
    """ABC spelling of a MIDI pitch: ``=C`` is middle C (60), ``=c`` the octave above, ``,`` and ``'`` move octaves."""
    name = NAMES[midi % 12]
    octave = midi // 12 - 5  # 0 for 60..71
    if octave >= 1:
        return name[:-1] + name[-1].lower() + "'" * (octave - 1)
    return name + "," * (-octave)


class Abc(Notes):
    """Melody tokens as in ``notes`` (16th-note grid by default); ``.abc`` text out (L = one grid step), ABC tunes in."""

    name = "abc"
    suffix = ".abc"
    default_bundle = None
    read_suffixes = (".abc",)

    def segments(self, tokens):
        """``[(midi_pitch or None, steps)]``: the notes and rests of ``tokens``, from the public ``to_notes``."""
        step = 60.0 / (self.qpm * self.steps_per_quarter)
        total = sum(1 for t in tokens if t != self.start_token)
        out, now = [], 0
        for pitch, _, start, end in self.to_notes(tokens):
            first, last = round(start / step), round(end / step)
            if first > now:
                out.append((None, first - now))
            out.append((pitch, last - first))
            now = last
        if total > now:
            out.append((None, total - now))
        return out

    def write(self, tokens, path, title="mgf", **options):
        if not str(path).lower().endswith(".abc"):
            raise InputError(f"{path}: abc writes .abc files")
        segments = self.segments(tokens)
        if not segments:
            raise InputError(f"{path}: no tokens to write")
        bar = 4 * self.steps_per_quarter  # grid steps in a 4/4 bar; the unit note length L is one step
        body, position = [], 0
        for pitch, steps in segments:
            left = steps
            while left:
                take = min(left, bar - position % bar)
                symbol = "z" if pitch is None else abc_pitch(pitch)
                left -= take
                body.append(symbol + (str(take) if take != 1 else "") + ("-" if left and pitch is not None else ""))
                position += take
                if position % bar == 0:
                    body.append("|")
        text = "\n".join(["X:1", f"T:{title}", "M:4/4", f"L:1/{bar}", f"Q:1/4={self.qpm:g}", "K:C",
                          " ".join(body).rstrip("|").rstrip() + " |]", ""])
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)


@hookimpl
def register_representations(register):
    register(Abc)
