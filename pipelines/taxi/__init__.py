"""Chicago taxi: predict big tippers (tip > 20% of the fare)."""
