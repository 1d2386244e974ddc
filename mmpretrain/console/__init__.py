"""What a person reads on the console: configuration errors, the start line, quiet output."""
