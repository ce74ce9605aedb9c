"""``mgf render``: music to a WAV file anyone can play, with the built-in synthesizer or FluidSynth."""

import os
import shutil
import subprocess
import tempfile
import wave

import numpy as np

from mgf import InputError, check_output, get_representation, hookimpl, synth

FLUIDSYNTH_HINT = "install FluidSynth and a General MIDI SoundFont: apt-get install fluidsynth fluid-soundfont-gm"


def render_notes(notes, output, soundfont=None, sample_rate=synth.SAMPLE_RATE):
    """Write ``notes`` to ``output`` (.wav): FluidSynth with ``soundfont`` if given, else the built-in synthesizer."""
    if soundfont is None:
        synth.write_wav(synth.render(notes, sample_rate), output, sample_rate)
        return
    program = shutil.which("fluidsynth")
    if program is None:
        raise InputError(f"--soundfont needs the fluidsynth program; {FLUIDSYNTH_HINT}")
    if not os.path.isfile(soundfont):
        raise InputError(f"{soundfont}: no such SoundFont file")
    with tempfile.TemporaryDirectory() as scratch:
        midi_path, wav_path = os.path.join(scratch, "in.mid"), os.path.join(scratch, "out.wav")
        midi = get_representation("midi")
        midi.write(midi.encode(notes), midi_path)
        result = subprocess.run([program, "-ni", "-g", "0.6", "-r", str(sample_rate), "-F", wav_path, soundfont, midi_path],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0 or not os.path.exists(wav_path):
            raise InputError(f"fluidsynth failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        with wave.open(wav_path) as handle:
            channels = handle.getnchannels()
            frames = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float64) / 32768
    mono = frames.reshape(-1, channels).mean(axis=1)
    peak = np.abs(mono).max(initial=0.0)
    if peak > synth.PEAK:
        mono *= synth.PEAK / peak
    synth.write_wav(mono, output, sample_rate)


def read_notes(representation_name, path):
    """The notes of a music file (or ``corpus:`` reference) as read by a representation; ``InputError`` if none."""
    representation = get_representation(representation_name)
    notes = representation.to_notes(representation.read(path))
    if not notes:
        raise InputError(f"{path}: no notes in it")
    return notes


def output_beside(path, suffix):
    """``path``'s file name with ``suffix``, in the current directory: the default output of render and plot."""
    return os.path.splitext(os.path.basename(path))[0] + suffix


def _render(args):
    output = args.output or output_beside(args.file, ".wav")
    check_output(output)  # before the reading and rendering, which take a while
    render_notes(read_notes(args.repr, args.file), output, args.soundfont, args.sample_rate)
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
