"""The analysis engine: slide -> tissue -> patches -> CNN -> stored heatmap and exports."""
