from tests.conftest import login


def test_agent_signs_in_and_sees_home(client, demo):
    response = login(client, "agent@demo.test")
    assert response.status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert "Find a charger" in page and "DEMO-CP-0001" in page
