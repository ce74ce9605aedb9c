"""Built-in controls (``mgf train --controls``): ``chord`` and ``key`` (harmony), ``density`` and ``polyphony`` (texture)."""
