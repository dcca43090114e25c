"""Built-in encoders, one module each: text, image, audio, behavior."""
