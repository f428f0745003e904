"""Word lists for synthetic names: small, so names repeat words and substring search finds many."""

from __future__ import annotations

ADJECTIVES = (
    "Velvet", "Crimson", "Silent", "Electric", "Golden", "Hollow", "Neon", "Wild",
    "Lunar", "Broken", "Midnight", "Paper", "Silver", "Burning", "Frozen", "Hidden",
    "Cosmic", "Rusty", "Gentle", "Savage", "Static", "Violet", "Amber", "Distant",
    "Lucky", "Restless", "Sunken", "Copper", "Bitter", "Dusty", "Lonely", "Brave",
)  # fmt: skip

NOUNS = (
    "Harbor", "Echo", "Garden", "Signal", "River", "Machine", "Mountain", "Parade",
    "Lantern", "Engine", "Orchard", "Satellite", "Canyon", "Mirror", "Ocean", "Tiger",
    "Comet", "Desert", "Forest", "Cathedral", "Highway", "Island", "Prism", "Thunder",
    "Voyage", "Wolves", "Sparrow", "Circuit", "Meadow", "Citadel", "Horizon", "Static",
)  # fmt: skip

TITLE_WORDS = (
    "Love", "Night", "Dreams", "Fire", "Rain", "Heart", "Home", "Gold", "Summer", "Ghosts",
    "Lights", "Stars", "Waves", "Shadows", "Roads", "Wings", "Storm", "Blue", "Dance", "Time",
    "Morning", "Smoke", "Glass", "Stone", "Bones", "Water", "Sky", "Youth", "Echoes", "Neon",
)  # fmt: skip

GENRES = (
    "indie rock", "dream pop", "synthwave", "deep house", "jazz fusion", "hip hop",
    "folk", "shoegaze", "techno", "soul", "post-punk", "ambient", "k-pop", "bossa nova",
)  # fmt: skip

LABELS = ("Records", "Recordings", "Music", "Sound", "Audio", "Label Group")

MARKETS = (
    "AR", "AT", "AU", "BE", "BR", "CA", "CH", "DE", "DK", "ES", "FI", "FR",
    "GB", "IE", "IT", "JP", "MX", "NL", "NO", "NZ", "PL", "PT", "SE", "US",
)  # fmt: skip
