"""Video decoding pieces shared by video-text (and later trajectory) sources."""
