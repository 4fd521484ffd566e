"""Where followers came from: channels, QR scans, posters and the funnel."""
