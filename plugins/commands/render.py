"""``mgf render``: music to a WAV file anyone can play, with the built-in synthesizer or FluidSynth."""

from mgf import check_output, hookimpl, output_beside, read_notes
from mgf.music import synth


def _render(args):
    output = args.output or output_beside(args.file, ".wav")
    check_output(output)  # before the reading and rendering, which take a while
    synth.render_notes(read_notes(args.repr, args.file), output, args.soundfont, args.sample_rate)
    print(output)


@hookimpl
def register_commands(cli):
    p = cli.command("render", "Render music (a MIDI file, a score, a corpus: reference) to a mono WAV file.")
    p.add_argument("file", help="music file or corpus: reference")
    p.add_argument("--repr", default="midi", help="representation that reads the file (default: midi)")
    p.add_argument("--soundfont", help="General MIDI SoundFont (.sf2) to render with FluidSynth instead")
    p.add_argument("--sample-rate", type=int, default=synth.SAMPLE_RATE, help=f"default: {synth.SAMPLE_RATE}")
    p.add_argument("-o", "--output", help="WAV file to write (default: the input's name with .wav)")
    p.set_defaults(run=_render)
