#!/usr/bin/env python3
"""Golden log-mel features for mote's audio front end, made by librosa.

The reference is librosa's own STFT and mel filter bank (an implementation
independent of mote's), applied to the same 16-bit samples:

  x = pcm / 32768 (float64); frame t = x[t*hop : t*hop + frame_len];
  periodic window; |FFT_{n_fft}|^2; librosa.filters.mel(...) @ P;
  log(max(mel, floor)) (natural or base 10); (v - offset) * scale.

librosa centres a window shorter than n_fft inside the FFT frame
(offset (n_fft - frame_len) / 2), which changes the phase, not |X|^2; the
input is padded by that offset on both sides so librosa's frame t sees
mote's frame t.

Usage: python3 tools/audio_golden.py BECKETT_WAV OUT_DIR
(BECKETT_WAV: `mote fetch beckett`, useful-moonshine-onnx==20251121).
Needs librosa (pip install librosa; made with the version written in the
JSON).
"""
import json
import sys
import wave

import librosa
import numpy as np

CONFIGS = {
    # The keyword front end (mote_host::audio::FrontEndSpec::kws).
    "kws": dict(frame_len=480, hop=320, n_fft=512, n_mels=40, fmin=60.0, fmax=7600.0,
                htk=False, norm="slaney", window="hann", log10=False, floor=1e-6,
                offset=0.0, scale=1.0),
    # Other corners of the definition: HTK mels without area normalisation,
    # Hamming, a 256-point FFT, log10, an offset and scale.
    "alt": dict(frame_len=256, hop=128, n_fft=256, n_mels=32, fmin=0.0, fmax=8000.0,
                htk=True, norm=None, window="hamming", log10=True, floor=1e-8,
                offset=-3.0, scale=0.5),
}
START, SECONDS = 16000, 3  # one second in, three seconds long


def main(wav_path, out_dir):
    with wave.open(wav_path) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    pcm = pcm[START:START + SECONDS * 16000]
    y = pcm.astype(np.float64) / 32768.0
    for name, c in CONFIGS.items():
        pad = (c["n_fft"] - c["frame_len"]) // 2
        yp = np.concatenate([np.zeros(pad), y, np.zeros(pad)])
        S = librosa.stft(yp, n_fft=c["n_fft"], hop_length=c["hop"], win_length=c["frame_len"],
                         window=c["window"], center=False)
        P = np.abs(S) ** 2
        fb = librosa.filters.mel(sr=16000, n_fft=c["n_fft"], n_mels=c["n_mels"], fmin=c["fmin"],
                                 fmax=c["fmax"], htk=c["htk"], norm=c["norm"], dtype=np.float64)
        mel = np.maximum(fb @ P, c["floor"])
        v = np.log10(mel) if c["log10"] else np.log(mel)
        v = ((v - c["offset"]) * c["scale"]).T  # frames x n_mels
        frames = 1 + (len(pcm) - c["frame_len"]) // c["hop"]
        assert v.shape == (frames, c["n_mels"]), (v.shape, frames)
        v.astype("<f4").tofile(f"{out_dir}/beckett_{name}.f32")
        meta = dict(c, source="beckett.wav (useful-moonshine-onnx==20251121)",
                    start_sample=START, samples=len(pcm), frames=frames,
                    reference=f"librosa {librosa.__version__}, numpy {np.__version__}",
                    command="python3 tools/audio_golden.py BECKETT_WAV tests/golden/audio")
        with open(f"{out_dir}/beckett_{name}.json", "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
