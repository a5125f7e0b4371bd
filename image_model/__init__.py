"""Patching the image model (the SD UNet) itself: AnimateDiff v3's domain adapter."""
