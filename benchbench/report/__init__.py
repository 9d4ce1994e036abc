"""Reports built from run directories: leaderboard, figures, effective context length."""
