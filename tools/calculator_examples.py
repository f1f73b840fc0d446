"""Example requests of the calculator tool: tool retrieval embeds them to route requests here, and
the weak-model prompts show them."""

EXAMPLES = [
    "What is 15% of 240?",
    "A ticket costs 8.5 dollars. How much do 6 tickets cost?",
    "A bus drives 180 km in 2 hours. How fast does it go?",
    "I have 90 dollars and spend 35. How much is left?",
    "一个西瓜 12.5 元，买 4 个多少钱？",
    "小刚有 56 张卡片，送给同学 18 张，还剩多少张？",
    "Calculate (1250 - 380) * 12 / 5",
    "What is 2 to the power of 100, exactly?",
    "What's the square root of 50?",
    "计算 (3+5)*12 的结果",
    "1/3 加 1/6 等于多少？",
    "240 的 15% 是多少？",
    "帮我算一下 20 的阶乘",
]
