import streamlit as st

from flux_dashboard import ui

view = ui.frame()
st.write("todo")
